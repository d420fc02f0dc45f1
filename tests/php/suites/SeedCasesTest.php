<?php
/**
 * The seed's three test scenarios, end to end against the real control plane.
 *
 * @package Molam_Form_Tests
 */

/**
 * Case 1 (success), case 2 (failing migration, automatic rollback), case 3 (operator-forced).
 */
class SeedCasesTest extends Molam_Form_TestCase {

	const FEE_UP   = "ALTER TABLE {prefix}molam_orders ADD COLUMN fee_cents INT NULL;\nCREATE INDEX idx_molam_orders_status ON {prefix}molam_orders (status);";
	const CONTRACT = 'ALTER TABLE {prefix}molam_orders MODIFY COLUMN merchant_ref VARCHAR(128) NOT NULL;';
	const UNDO     = 'ALTER TABLE {prefix}molam_orders MODIFY COLUMN merchant_ref VARCHAR(64) NOT NULL;';

	public function test_case_1_successful_upgrade_needs_no_rollback() {
		$release = $this->build_release( '4.0.0', array( 'migrations' => array( '001_fee.sql' => self::FEE_UP ) ) );
		$this->publish( $release );

		$result = $this->upgrade();

		$this->assertSame( 'success', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( '3.9.0', $result['from_version'] );
		$this->assertSame( '4.0.0', $result['to_version'] );
		$this->assertSame( 'not_required', $result['rollback_status'] );
		$this->assertNull( $result['error'] );
		$this->assertSame( $release['tree'], self::tree( self::live_dir() ) );
		$this->assertSame( $this->orders_before, $this->orders( array( 'id', 'merchant_ref', 'amount_cents', 'currency', 'status', 'created_at' ) ) );
		$this->assertStringContainsString( '`fee_cents` int(11) DEFAULT NULL', $this->schema() );
		$this->assertSame( array( '001_fee.sql' ), array_keys( Molam_Form_Migrations::applied( $this->plugin ) ) );
		$this->assertNull( molam_form_in_maintenance() );
		$this->assertFileDoesNotExist( Molam_Form_Settings::work_dir() . '/journal.json' );
		$logs = $this->cp_upgrades();
		$this->assertCount( 1, $logs );
		$this->assertSame( 'success', $logs[0]['status'] );
		$this->assertSame( '3.9.0', $logs[0]['from_version'] );
		$backups = $this->cp_rows( 'SELECT * FROM plugin_backups WHERE plugin_name = ?', array( $this->plugin ) );
		$this->assertCount( 1, $backups );
		$this->assertSame( 'completed', $backups[0]['backup_status'] );
		$this->assertSame( hash_file( 'sha256', $backups[0]['backup_path'] ), $backups[0]['sha256'] );
		$this->assertSame( array(), Molam_Form_Outbox::pending() );
	}

	public function test_case_2_failing_migration_rolls_back_files_and_options_and_keeps_every_row() {
		$release = $this->build_release(
			'4.0.0',
			array(
				'migrations' => array(
					'001_fee.sql'    => self::FEE_UP,
					'002_broken.sql' => self::CONTRACT . "\nALTER TABLE {prefix}molam_orders ADD COLUMN broken INT NULL DEFAULT ;",
				),
				'down'       => array( '002_broken.sql' => self::UNDO ),
			)
		);
		$this->publish( $release );
		$schema_before  = $this->schema();
		$options_before = $this->gateway_options();

		$result = $this->upgrade();

		$this->assertSame( 'failed', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( 'success', $result['rollback_status'] );
		$this->assertStringContainsString( 'migration statement failed', $result['error'] );
		$this->assertSame( 3, $result['files_restored'] );
		$this->assertTrue( $result['db_restored'] );
		$this->assertSame( array( '002_broken.sql' ), $result['reverted_migrations'] );
		$this->assertTrue( Molam_Form_Upgrade::test_payment_processing(), 'payment processing works after the rollback' );
		$this->assertSame( self::tree( self::fixture_dir() ), self::tree( self::live_dir() ) );
		$this->assertSame( $this->orders_before, $this->orders( array( 'id', 'merchant_ref', 'amount_cents', 'currency', 'status', 'created_at' ) ) );
		// The expand file stays applied and recorded; the contract file was reverted.
		$this->assertSame( $schema_before, preg_replace( array( "/  `fee_cents` int\\(11\\) DEFAULT NULL,\n/", "/,\n  KEY `idx_molam_orders_status` \\(`status`\\)/" ), '', $this->schema() ) );
		$this->assertSame( array( '001_fee.sql' ), array_keys( Molam_Form_Migrations::applied( $this->plugin ) ) );
		$this->assertSame( $options_before, $this->gateway_options() );
		$this->assertNull( molam_form_in_maintenance() );
		$logs = $this->cp_upgrades();
		$this->assertCount( 1, $logs );
		$this->assertSame( 'rolled_back', $logs[0]['status'] );
		$this->assertSame( 'success', $logs[0]['rollback_status'] );
		$rollbacks = $this->cp_rollbacks();
		$this->assertCount( 1, $rollbacks );
		$this->assertSame( 'automatic', $rollbacks[0]['rollback_trigger'] );
		$this->assertSame( '4.0.0', $rollbacks[0]['from_version'] );
		$this->assertSame( '3.9.0', $rollbacks[0]['to_version'] );
		$this->assertSame( 1, (int) $rollbacks[0]['success'] );
		$this->assertSame( 3, (int) $rollbacks[0]['files_restored'] );
		$notice = get_option( 'molam_form_last_rollback' );
		$this->assertStringContainsString( 'migration statement failed', $notice['reason'] );
		// The failed release is on hold: the next run does not pause checkout again.
		$again = $this->upgrade();
		$this->assertSame( 'skipped', $again['status'] );
		$this->assertStringContainsString( 'on hold', $again['reason'] );
	}

	public function test_case_3_operator_forced_rollback_runs_on_the_next_run() {
		$release = $this->build_release( '4.0.0', array( 'migrations' => array( '001_ref.sql' => self::CONTRACT ), 'down' => array( '001_ref.sql' => self::UNDO ) ) );
		$this->publish( $release );
		$schema_before = $this->schema();
		$this->assertSame( 'success', $this->upgrade()['status'] );
		$this->assertNotSame( $schema_before, $this->schema() );
		$order_id = Molam_Payment_Gateway::take_order( 'AFTER-UPGRADE', 4200 );
		$this->assertGreaterThan( 40, $order_id );

		$rid = $this->force_rollback( '4.0.0', '3.9.0' );

		$result = $this->upgrade();

		$this->assertSame( 'success', $result['status'], wp_json_encode( $result ) );
		$this->assertSame( 'success', $result['rollback_status'] );
		$this->assertSame( 'operator_forced', $result['trigger'] );
		$this->assertSame( self::tree( self::fixture_dir() ), self::tree( self::live_dir() ) );
		$this->assertSame( $schema_before, $this->schema() );
		$after = $this->orders();
		$this->assertCount( 41, $after, 'the order taken on 4.0.0 is still there' );
		$this->assertSame( 'AFTER-UPGRADE', $after[40]['merchant_ref'] );
		$row = $this->cp_rows( 'SELECT * FROM plugin_rollback_history WHERE rollback_id = ?', array( str_replace( '-', '', $rid ) ) );
		if ( ! $row ) {
			$row = $this->cp_rows( 'SELECT * FROM plugin_rollback_history WHERE rollback_id = ?', array( $rid ) );
		}
		$this->assertCount( 1, $row );
		$this->assertSame( 1, (int) $row[0]['success'] );
		$this->assertNotNull( $row[0]['completed_at'] );
		global $wpdb;
		$this->assertSame( array(), $wpdb->get_col( "SELECT option_name FROM {$wpdb->options} WHERE option_name LIKE 'molam\\_form\\_optsnap\\_%'" ), 'no snapshot left behind' );
		$this->assertSame( array(), $this->ops( 'GET', "rollback/pending?merchant_id=" . getenv( 'MOLAM_TEST_MERCHANT' ) . "&plugin_name={$this->plugin}" )['body']['rollbacks'] );
	}
}
