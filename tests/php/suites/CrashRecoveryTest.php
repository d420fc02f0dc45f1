<?php
/**
 * `kill -9` of the php process at every journal step, then recovery: the plugin ends wholly
 * old or wholly new, files and tables byte for byte.
 *
 * @package Molam_Form_Tests
 */

/**
 * Crash points of the upgrade and of the rollback, each followed by recovery on the next run
 * or on the next page load.
 */
class CrashRecoveryTest extends Molam_Form_TestCase {

	const UP   = 'ALTER TABLE {prefix}molam_orders MODIFY COLUMN merchant_ref VARCHAR(128) NOT NULL;';
	const DOWN = 'ALTER TABLE {prefix}molam_orders MODIFY COLUMN merchant_ref VARCHAR(64) NOT NULL;';

	/**
	 * Upgrade crash points: every journal step, the end of extraction and each migration file.
	 *
	 * @return array
	 */
	public function upgrade_points() {
		$points = array( 'prepared', 'backed_up', 'downloaded', 'extract:done', 'staged', 'maintenance_on', 'options_saved', 'swap_started', 'aside', 'swapped', 'migrations_started', 'migration-begun:001_ref.sql', 'migration-applied:001_ref.sql', 'migrations_done', 'verified', 'committed' );
		$out    = array();
		foreach ( $points as $i => $point ) {
			$out[ $point ] = array( $point, 0 === $i % 2 ? 'page load' : 'next run' );
		}
		return $out;
	}

	/**
	 * Rollback crash points (the upgrade's smoke test fails, the rollback is killed).
	 *
	 * @return array
	 */
	public function rollback_points() {
		$out = array();
		foreach ( array( 'rollback_started', 'restore:between-renames', 'files_restored', 'db_restored', 'rolled_back' ) as $i => $point ) {
			$out[ $point ] = array( $point, 0 === $i % 2 ? 'next run' : 'page load' );
		}
		return $out;
	}

	/**
	 * Kill the upgrade at `$point`, check checkout while it is down, recover.
	 *
	 * @param string $point  Fault point.
	 * @param string $how    "page load" or "next run".
	 * @param bool   $broken Release whose smoke test fails.
	 * @return array The release.
	 */
	private function crash_and_recover( $point, $how, $broken = false ) {
		$release = $this->build_release( '4.0.0', array( 'broken' => $broken, 'migrations' => array( '001_ref.sql' => self::UP ), 'down' => array( '001_ref.sql' => self::DOWN ) ) );
		$this->publish( $release );

		$killed = $this->child( array(), array( 'MOLAM_FORM_FAULT' => $point ) );

		$this->assertSame( 9, $killed['signal'], "not killed at $point: " . $killed['stdout'] . $killed['stderr'] );
		$journal = Molam_Form_Store::load( 'journal.json' );
		$this->assertIsArray( $journal, 'the journal survives the kill' );
		$in_window = in_array( $journal['step'], array_slice( Molam_Form_Store::UPGRADE_STEPS, 4, 8 ), true ) || in_array( $journal['step'], Molam_Form_Store::ROLLBACK_STEPS, true );
		if ( $in_window ) {
			$this->assertNotNull( molam_form_in_maintenance(), "checkout is paused after a kill at $point" );
			$this->assertFalse( Molam_Payment_Gateway::take_order( 'DURING', 100 ) );
		}
		$this->assertNotEquals( $release['tree'] + array(), array(), 'release tree known' );

		if ( 'page load' === $how ) {
			$response = wp_remote_get( getenv( 'MOLAM_TEST_WP_URL' ) . '/?p=1', array( 'timeout' => 60 ) );
			$this->assertNotWPError( $response );
		} else {
			$run = $this->child( array( 'recover' ) );
			$this->assertSame( 0, $run['signal'], $run['stderr'] );
			$this->assertSame( 0, $run['exit'], $run['stdout'] . $run['stderr'] );
		}
		wp_cache_flush();
		Molam_Form_Outbox::flush();
		$this->assertFileDoesNotExist( Molam_Form_Settings::work_dir() . '/journal.json', "recovered after a kill at $point" );
		$this->assertNull( molam_form_in_maintenance(), "checkout open again after a kill at $point" );
		$this->assertSame( array(), array_values( preg_grep( '/^(staging|download|failed)-/', scandir( Molam_Form_Settings::work_dir() ) ) ), 'no scratch left' );
		return $release;
	}

	/**
	 * Assert WP_Error absence.
	 *
	 * @param mixed $value Value.
	 */
	private function assertNotWPError( $value ) {
		$this->assertFalse( is_wp_error( $value ), is_wp_error( $value ) ? $value->get_error_message() : '' );
	}

	/**
	 * @dataProvider upgrade_points
	 *
	 * @param string $point Fault point.
	 * @param string $how   Recovery.
	 */
	public function test_a_kill_during_the_upgrade_leaves_the_plugin_wholly_old_or_wholly_new( $point, $how ) {
		$release = $this->crash_and_recover( $point, $how );

		$logs = $this->cp_upgrades();
		$this->assertCount( 1, $logs, 'the upgrade is reported once' );
		if ( 'committed' === $point ) {
			$this->assertSame( $release['tree'], self::tree( self::live_dir() ), 'files wholly new' );
			$this->assertSame( $this->orders_before, $this->orders() );
			$this->assertSame( str_replace( 'varchar(64)', 'varchar(128)', $this->schema_before ), $this->schema(), 'schema wholly new' );
			$this->assertSame( 'success', $logs[0]['status'] );
		} else {
			$this->assertWhollyOld( "after a kill at $point" );
			$this->assertSame( array(), Molam_Form_Migrations::applied( $this->plugin ), 'the contract migration is forgotten' );
			$in_window = array_search( $point, Molam_Form_Store::UPGRADE_STEPS, true );
			$this->assertSame( false !== $in_window && $in_window < 4 || 'extract:done' === $point ? 'failed' : 'rolled_back', $logs[0]['status'] );
		}
		$this->assertTrue( Molam_Form_Upgrade::test_payment_processing() );
		$this->assertGreaterThan( 40, Molam_Payment_Gateway::take_order( 'AFTER', 500 ), 'checkout takes orders again' );
	}

	/**
	 * @dataProvider rollback_points
	 *
	 * @param string $point Fault point.
	 * @param string $how   Recovery.
	 */
	public function test_a_kill_during_the_rollback_still_ends_wholly_old( $point, $how ) {
		$this->crash_and_recover( $point, $how, true );

		$this->assertWhollyOld( "after a kill at $point" );
		$this->assertSame( array(), Molam_Form_Migrations::applied( $this->plugin ) );
		$rollbacks = $this->cp_rollbacks();
		$this->assertCount( 1, $rollbacks, 'the rollback is reported once' );
		$this->assertSame( 1, (int) $rollbacks[0]['success'] );
		$this->assertSame( 'rolled_back', $this->cp_upgrades()[0]['status'] );
	}

	public function test_a_second_kill_during_recovery_still_converges() {
		$release = $this->build_release( '4.0.0', array( 'migrations' => array( '001_ref.sql' => self::UP ), 'down' => array( '001_ref.sql' => self::DOWN ) ) );
		$this->publish( $release );
		$this->assertSame( 9, $this->child( array(), array( 'MOLAM_FORM_FAULT' => 'migrations_done' ) )['signal'] );
		$this->assertSame( 9, $this->child( array( 'recover' ), array( 'MOLAM_FORM_FAULT' => 'files_restored' ) )['signal'] );

		$this->assertSame( 0, $this->child( array( 'recover' ) )['exit'] );

		$this->assertWhollyOld( 'after two kills' );
		Molam_Form_Outbox::flush();
		$this->assertCount( 1, $this->cp_upgrades() );
		$this->assertCount( 1, $this->cp_rollbacks() );
	}

	public function test_a_rollback_that_cannot_finish_keeps_checkout_paused_and_is_reported_as_failed() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 9, $this->child( array(), array( 'MOLAM_FORM_FAULT' => 'swapped' ) )['signal'] );
		// Someone deleted the previous version kept beside the plugin.
		foreach ( glob( Molam_Form_Settings::work_dir() . '/prev-*' ) as $dir ) {
			Molam_Form_Store::remove_tree( $dir );
		}

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['rollback_status'], wp_json_encode( $result ) );
		$this->assertStringContainsString( 'the previous plugin directory is gone', $result['error'] );
		$this->assertNotNull( molam_form_in_maintenance(), 'checkout stays paused' );
		$flag = json_decode( (string) file_get_contents( Molam_Form_Store::flag_path() ), true );
		$this->assertSame( Molam_Form_Store::NEVER, $flag['until'], 'the flag does not expire' );
		$this->assertSame( 'rollback_failed', Molam_Form_Store::load( 'journal.json' )['step'], 'the journal stays for the next run' );
		$rollbacks = $this->cp_rollbacks();
		$this->assertCount( 1, $rollbacks );
		$this->assertSame( 0, (int) $rollbacks[0]['success'] );
		$this->assertSame( 'failed', $this->cp_upgrades()[0]['status'] );
		$this->assertFalse( get_option( 'molam_form_last_rollback' )['success'] );
		$this->assertSame( 'failed', $this->upgrade()['rollback_status'], 'the next run retries and fails again, no upgrade' );
		$this->assertCount( 2, $this->cp_rollbacks(), 'the retry is reported as a new rollback' );
		$this->assertCount( 1, $this->cp_upgrades(), 'the upgrade failure is counted once' );
	}

	public function test_option_rows_written_after_the_snapshot_are_kept_aside_by_the_rollback() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->assertSame( 9, $this->child( array(), array( 'MOLAM_FORM_FAULT' => 'swapped' ) )['signal'] );
		$before = get_option( 'molam_gateway_settings' );
		// The merchant saves the gateway's settings before recovery runs.
		update_option( 'molam_gateway_settings', array_merge( $before, array( 'title' => 'Pay with Molam' ) ) );

		$result = $this->child( array( 'recover' ) );

		$this->assertSame( 0, $result['exit'], $result['stderr'] );
		$this->assertSame( $before, get_option( 'molam_gateway_settings' ), 'option rows back' );
		global $wpdb;
		$names = $wpdb->get_col( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'molam\\_form\\_optkept\\_%'" );
		$this->assertCount( 1, $names );
		$kept = get_option( $names[0] );
		$this->assertIsArray( $kept );
		$this->assertSame( 'Pay with Molam', maybe_unserialize( $kept['rows'][0]['option_value'] )['title'], 'the newer value is kept, not lost' );
		Molam_Form_Outbox::flush();
		$this->assertStringContainsString( 'kept in option molam_form_optkept_', $this->cp_rollbacks()[0]['rollback_reason'] );
	}
}
