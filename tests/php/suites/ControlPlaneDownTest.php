<?php
/**
 * A control plane that is down never blocks a rollback; reports wait in options and are
 * delivered later under the same Idempotency-Key, recorded once.
 *
 * @package Molam_Form_Tests
 */

/**
 * The options-backed outbox against the real control plane.
 */
class ControlPlaneDownTest extends Molam_Form_TestCase {

	public function test_a_control_plane_that_is_down_means_no_upgrade_and_no_error() {
		$this->publish( $this->build_release( '4.0.0' ) );
		$this->set_settings( array( 'api_url' => self::dead_url() ) );

		$decision = Molam_Form_Rollout::should_upgrade( getenv( 'MOLAM_TEST_MERCHANT' ), $this->plugin, '3.9.0' );
		$result   = $this->upgrade();

		$this->assertFalse( $decision['should_upgrade'] );
		$this->assertStringContainsString( 'Control plane unreachable', $decision['reason'] );
		$this->assertSame( 'skipped', $result['status'] );
		$this->assertStringContainsString( 'Control plane unreachable', $result['reason'] );
		$this->assertWhollyOld();
	}

	public function test_reports_of_a_rollback_done_while_the_control_plane_is_down_are_delivered_later_once() {
		$release = $this->build_release( '4.0.0' );
		$this->publish( $release );
		$killed = $this->child( array(), array( 'MOLAM_FORM_FAULT' => 'swapped' ) );
		$this->assertSame( 9, $killed['signal'], $killed['stdout'] . $killed['stderr'] );
		$tx = Molam_Form_Store::load( 'journal.json' )['txid'];
		$this->set_settings( array( 'api_url' => self::dead_url() ) );

		$recovered = $this->upgrade();

		$this->assertSame( 'skipped', $recovered['status'], wp_json_encode( $recovered ) );
		$this->assertSame( 'success', $recovered['recovered']['rollback_status'] );
		$this->assertWhollyOld( 'after a rollback with the control plane down' );
		$queued = array_column( Molam_Form_Outbox::pending(), 'key' );
		// The backup's reports were queued before the kill and never sent: they wait too.
		$this->assertSame( array( "$tx-backup", "$tx-backup-done", "$tx-upgrade", "$tx-rollback-log", "$tx-initiate", "$tx-complete" ), $queued );
		$this->assertSame( array(), $this->cp_rollbacks() );
		$stored = get_option( Molam_Form_Outbox::QUEUE );
		$this->assertSame( 'rollback/{rollback_id}/complete', $stored[ "$tx-complete" ]['path'] );
		$this->assertSame( "$tx-initiate", $stored[ "$tx-complete" ]['depends_on'] );
		$this->assertGreaterThan( 0, $stored[ "$tx-backup" ]['attempts'] );

		$this->set_settings( array() );
		$this->assertSame( array( 'sent' => 6, 'dead' => 0, 'pending' => 0 ), Molam_Form_Outbox::flush() );
		$this->assertSame( 'completed', $this->cp_rows( 'SELECT backup_status FROM plugin_backups WHERE plugin_name = ?', array( $this->plugin ) )[0]['backup_status'] );

		$rollbacks = $this->cp_rollbacks();
		$this->assertCount( 1, $rollbacks );
		$this->assertSame( 1, (int) $rollbacks[0]['success'] );
		$this->assertNotNull( $rollbacks[0]['completed_at'] );
		$this->assertSame( 'rolled_back', $this->cp_upgrades()[0]['status'] );
		$keys = array_column( $this->cp_rows( 'SELECT key FROM api_idempotency_records WHERE key LIKE ?', array( "$tx-%" ) ), 'key' );
		sort( $keys );
		$this->assertSame( array( "$tx-backup", "$tx-backup-done", "$tx-complete", "$tx-initiate", "$tx-rollback-log", "$tx-upgrade" ), $keys );
	}

	public function test_a_report_whose_answer_was_lost_is_recorded_once_when_sent_again() {
		self::enqueue_failed_upgrade( 'lost-answer-1', 'checksum mismatch' );
		$this->assertSame( 1, Molam_Form_Outbox::flush()['sent'] );
		$first = Molam_Form_Outbox::result( 'lost-answer-1' );
		// The answer never reached the shop: it forgets it and the report is queued again.
		delete_option( Molam_Form_Outbox::RESULTS );
		self::enqueue_failed_upgrade( 'lost-answer-1', 'checksum mismatch' );
		$this->assertSame( 1, Molam_Form_Outbox::flush()['sent'] );

		$this->assertCount( 1, $this->cp_upgrades() );
		$this->assertSame( $first['upgrade_log']['id'], Molam_Form_Outbox::result( 'lost-answer-1' )['upgrade_log']['id'] );
	}

	public function test_a_report_the_control_plane_refuses_goes_to_the_dead_letters_and_does_not_block_the_queue() {
		Molam_Form_Outbox::enqueue( 'POST', 'upgrades', array( 'from_version' => 'not a version', 'to_version' => '4.0.0', 'status' => 'failed' ), 'refused-1' );
		Molam_Form_Outbox::enqueue( 'POST', 'upgrades', array( 'from_version' => '3.9.0', 'to_version' => '4.0.0', 'status' => 'failed', 'error' => 'x' ), 'accepted-1' );

		$this->assertSame( array( 'sent' => 1, 'dead' => 1, 'pending' => 0 ), Molam_Form_Outbox::flush() );
		$this->assertSame( 400, Molam_Form_Outbox::dead()['refused-1']['refused']['status'] );
		$this->assertCount( 1, $this->cp_upgrades() );
	}
}
